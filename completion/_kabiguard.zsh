#compdef kabiguard weak-modules
# zsh completion for kabiguard and weak-modules: the command completes its own line, from
# its grammar, when run with COMP_LINE set.
local line="${(j: :)${(@)words[1,CURRENT]}}"
local -a candidates
candidates=("${(@f)$(COMP_LINE="$line" COMP_POINT=${#line} @SBINDIR@/$service 2>/dev/null)}")
compadd -- "${candidates[@]}"
