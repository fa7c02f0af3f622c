#!/bin/sh
# lifecycle-loop.sh - the long tier's hand-over loop: tests/test_lifecycle.sh
# with ROUNDS (default 200) VMs stopped each a way drawn at random (SIGTERM
# to cairnd; umount, then SIGTERM to cairnfs and cairnd; SIGTERM to every
# process at once; kill -9 at a random moment or during a snapshot), each
# followed at once by the next VM and its checks.  Bounded: no new cycle
# after MINUTES (default 60), every step has its own bound.  SEED repeats
# a run's sequence of stops.  Prints TAP.
LIFECYCLE_STOPS=random LIFECYCLE_CYCLES=${ROUNDS:-200} LIFECYCLE_MINUTES=${MINUTES:-60} \
	LIFECYCLE_SEED=${SEED:-$$} exec sh "${CAIRN_SRCDIR:-.}/tests/test_lifecycle.sh"
