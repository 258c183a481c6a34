"""The driver control plane: what runs inside a Spark driver.

Data flows one way: the RM :mod:`.poller` reads node states and hands :class:`~decom._yarn.NodeStatus`
changes to the :mod:`.controller`, which turns each node's lifecycle into :class:`~.shim.Action` calls on
the JVM shim (:mod:`.jvm`), which acts in Spark's scheduler. :mod:`.api` holds ``configure``/``enable``,
:mod:`.config` the ``spark.decom.*`` settings, :mod:`.autoenable` and :mod:`.dist` the no-code-change
``spark-submit`` path, and :mod:`.status` reads the shim's counters back from a driver or its event log.
"""
