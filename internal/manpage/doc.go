// Package manpage renders a manual page (man(7) roff) from a kong command-line model, so the
// manual and --help say the same thing: both come from the help strings and Help() methods in
// the command grammar. Sections the grammar cannot hold (FILES, EXIT STATUS, SEE ALSO) are
// given by the caller.
//
// Why no library: kong has no man page output, and the generators that exist (cobra's, the
// mango family) each bring their own command model.
package manpage
