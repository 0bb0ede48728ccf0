"""The in-process agent: instrumentation installed inside the target before
its event loop runs. Standard library only (it runs in the target's own
interpreter); see __main__ for the entry point."""
