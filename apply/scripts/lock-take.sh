# lock-take.sh LOCK: create LOCK from stdin, atomically (noclobber makes
# the redirection O_EXCL). When it exists already, print it and exit 3.
mkdir -p "${1%/*}" && chmod 0700 "${1%/*}" || exit 1
if ( set -C; cat > "$1" ) 2>/dev/null; then exit 0; fi
cat "$1"
exit 3
