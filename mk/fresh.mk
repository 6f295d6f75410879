# make check-fresh: `make run` and `make check`'s build as the first
# command after git clone, on a Debian 12 root made without any of the
# packages (tests/fresh/run.sh; root, about 10 minutes). .ci/run runs it
# whenever the build files changed since the last time it passed.
.PHONY: check-fresh
check-fresh:
	sh tests/fresh/run.sh
