"""Cross-cutting helpers every stage uses: atomic files, registries, provenance."""
