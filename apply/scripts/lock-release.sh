# lock-release.sh LOCK CONTENT: remove LOCK only while it holds CONTENT
# (the lock this run wrote, or the dead run's lock apply judged), never a
# lock another run has taken since. Exit 1 when it was not removed.
[ "$(cat "$1" 2>/dev/null)" = "$2" ] && rm -f "$1"
