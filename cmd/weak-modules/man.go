package main

import "github.com/kabiguard/kabiguard/internal/manpage"

// manPage is weak-modules(8), made from this grammar's help by the hidden --man flag.
var manPage = manpage.Page{
	Name: "weak-modules", Section: 8,
	Title: "keep weak-updates links right when kernels or kABI-tracking modules come and go",
	Sections: []manpage.Section{
		{Title: "Compatibility", Body: `A drop-in for the weak-modules script of RHEL's kmod package: the same options, the same
module list on standard input, called by kmod packages' scriptlets and by DKMS. Unlike the
script, every failure is printed and makes the exit status non-zero, links are judged with
the providers actually chosen for each kernel, and a removal that strips a kernel staying
installed of a required module (kabiguard-required(5)) is reported at error level.`},
		{Title: "Files", Body: `/lib/modules/RELEASE/weak-updates/
  the links weak-modules maintains

/etc/kabiguard/kabiguard.conf, /etc/kabiguard/required.d/*.conf
  shared with kabiguard(8)`},
		{Title: "See also", Body: `kabiguard(8), kabiguard.conf(5), kabiguard-required(5), depmod(8), dracut(8)`},
	},
}
