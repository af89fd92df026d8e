"""Models: fetched once into plain Hugging Face folders."""
