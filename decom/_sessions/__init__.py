"""The shared-cluster tools: for a YARN cluster shared by many Livy/notebook users.

:mod:`.livy` is the Livy REST client; :mod:`.inventory` lists sessions and what they hold; :mod:`.reap`
ends idle ones; :mod:`.capacity` and :mod:`.admission` size the cluster and check a request fits;
:mod:`.sparkmagic` writes notebook session settings; :mod:`.diagnose` explains a failed session. Nothing
here runs in a driver, and nothing here imports the driver side.
"""
