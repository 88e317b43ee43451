// Package gate is the install-time gate: before a kernel gets a boot entry (kernel-install's
// 86- plugin, the Debian postinst.d hooks), Check decides whether every required module
// (config.Required) resolves for it — native or through a weak-updates link, indexed by
// depmod with every dependency present, loadable by the loader's rules — and whether every
// required early module is inside the initramfs the kernel will boot with (Images). Advice
// says what the admin can do on this host when it refuses.
package gate
