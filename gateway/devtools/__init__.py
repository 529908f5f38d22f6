"""Developer tools: a faithful fake Hugging Face OAuth provider for the demo and the tests."""
