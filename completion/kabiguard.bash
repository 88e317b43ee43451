# bash completion for kabiguard and weak-modules (installed as both names in
# /usr/share/bash-completion/completions): each command completes its own line, from its
# grammar, when run with COMP_LINE set.
complete -o default -C @SBINDIR@/kabiguard kabiguard
complete -o default -C @SBINDIR@/weak-modules weak-modules
