"""The ``decom`` command: :mod:`.main` is the group, :mod:`.options` the options and error handling every
command shares, :mod:`.cluster` the node and driver commands, :mod:`.sessions` the shared-cluster ones."""
