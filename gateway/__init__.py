"""hf-gateway: Sign in with Hugging Face in front of any internal web tool."""

__version__ = "0.1.0"
