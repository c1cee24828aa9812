"""Training, data and evaluation code: installed by pip, never on a robot."""
