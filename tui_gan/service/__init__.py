"""The training service (a run that outlives any terminal) and its viewers' side. The
service's process: its entry point (main.py, ``python -m tui_gan.service``), training and
serving the run (training.py), its log lines and signals; it imports the engine only to run
it. The rest is torch-free, for viewers too: the wire protocol, the hub, the client, the
run's lock and record, starting a service (start.py)."""
