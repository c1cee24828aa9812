"""The ``smolrgpt`` command, one layer above the model, the ROS adapter and the training code.

``smolrgpt_cli.main`` holds the table of subcommands (each implemented in the layer it belongs
to) and the error contract; ``smolrgpt_cli.errors`` holds ``CommandError``, the one name every
layer may import from here.
"""
