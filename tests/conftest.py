"""Suite-wide: `make test` runs `-n 2 --dist loadfile`: each test file runs
on one worker, so a module-scoped run (one end-to-end run serving several
assertions) is made once, and the files are spread over the machine's two
cores. End-to-end runs on both workers share the machine; the tool is built to
tell a loaded host from a slow target (run-queue wait, host stalls, the
environment section), and these tests hold it to that."""
