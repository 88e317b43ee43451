# bash completion for kabiguard and weak-modules (installed as both names in
# /usr/share/bash-completion/completions): each command completes its own line, from its
# grammar, when run with COMP_LINE set. -o filenames: a directory offered (modules, images)
# gets no space after it, so Tab goes on inside it, and a path is quoted as bash quotes one.
complete -o default -o filenames -C @SBINDIR@/kabiguard kabiguard
complete -o default -o filenames -C @SBINDIR@/weak-modules weak-modules
