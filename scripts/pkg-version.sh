#!/bin/sh
# The packages' version, and the commit it was built from, as "VERSION SHA" (make deb, make
# rpm): 0~gitYYYYMMDDhhmmss.SHA, sorting by commit time (SHA.dirty for local changes).
stamp=$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || echo 0)
sha=$(git rev-parse --short=8 HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || sha=$sha.dirty
echo "0~git$stamp.$sha $sha"
