"""Identity providers: the protocol (base), generic OIDC and Hugging Face."""
