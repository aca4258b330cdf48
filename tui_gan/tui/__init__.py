"""The Textual app: a viewer of the engine's event stream that sends control requests.
Imports no torch (importing it leaves torch out of sys.modules)."""
