"""The benchmark: screenpop against a minimal reference app (the floor), same stubs, same load, same run."""
