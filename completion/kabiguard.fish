# fish completion for kabiguard and weak-modules: the command completes its own line, from
# its grammar, when run with COMP_LINE set.
complete -c kabiguard -f -a '(env COMP_LINE=(commandline -cp) @SBINDIR@/kabiguard)'
complete -c weak-modules -f -a '(env COMP_LINE=(commandline -cp) @SBINDIR@/weak-modules)'
