"""Pure analysis: run-directory data in, Findings and figures out.

Never imports `instrument` or `scenarios`; never starts processes or opens sockets.
"""
