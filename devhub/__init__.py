"""A local IoT-Hub-compatible endpoint for laptops and tests."""
