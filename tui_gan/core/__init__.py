"""The torch-free core: settings, errors, atomic writes, the engine <-> viewer contract
(events, control requests), the run directory's paths and event-to-text. Imports no torch,
no Textual: the CLI, the headless log and the app all stand on it."""
