"""The training service (a run that outlives any terminal) and its viewers' side: the
wire protocol, the service's hub, the client, the run's lock and record. Torch-free: the
service imports the engine only to run it."""
