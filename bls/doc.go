// Package bls finds the Boot Loader Specification (Type #1) entries of a kernel:
// loader/entries/*.conf below /boot (RHEL 8+, where kernel-install's 90-loaderentry and
// grubby's 20-grubby.install write them), /efi or /boot/efi (an ESP used as $BOOT). An entry
// is a text file of "key value" lines (title, version, machine-id, sort-key, linux, initrd,
// options, ...; '#' starts a comment; initrd and options may repeat) named
// ENTRY-TOKEN-RELEASE.conf, the token being the machine id by default, with an optional
// boot-counting suffix "+LEFT[-DONE]" before ".conf".
//
// It only reads: kabiguard never writes, edits or removes a boot entry, and never calls
// grubby (RHEL hosts without grubby exist: BLS with systemd-boot, images, containers).
package bls
