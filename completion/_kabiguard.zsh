#compdef kabiguard weak-modules
# zsh completion for kabiguard and weak-modules: the command completes its own line, from
# its grammar, when run with COMP_LINE set. A directory (ending in /) is offered without the
# space after it, so Tab can go on into it; no output offers nothing (not one empty word).
local line="${(j: :)${(@)words[1,CURRENT]}}"
local -a candidates
candidates=(${(f)"$(COMP_LINE="$line" COMP_POINT=${#line} @SBINDIR@/$service 2>/dev/null)"})
local ret=1
compadd -- ${candidates:#*/} && ret=0
compadd -S '' -- ${(M)candidates:#*/} && ret=0
return ret
