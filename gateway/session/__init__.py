"""Sessions: records and cookies (model), the store protocol and its adapters."""
