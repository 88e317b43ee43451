# kabiguard's dnf 4 plugin: keep a kernel that would boot without a required module out of the
# transaction. A thin caller of `kabiguard forecast --json`: every decision is kabiguard's.
#
# Hook: resolved(). Forecasting needs the package file, which exists only once downloaded, and
# taking a package out needs a transaction that has not started. So, once dnf has resolved the
# transaction (before the summary and the prompt), the plugin downloads only the transaction's
# kernel packages (dnf's own download, into its cache, so the later download finds them), has
# kabiguard forecast each one against the host (--installroot's root when given), and for a
# kernel that would lose a required module (policy refuse) excludes it and what in the
# transaction needs it, then resolves again on a new goal: first the command line's requests
# (as if the kernel had been given to --exclude, so an upgrade takes the best kernel left,
# which is forecast in turn), else, when a request named the kernel itself, the transaction dnf
# had resolved less what was taken out. When nothing is left or dnf cannot resolve, the plugin
# raises dnf.exceptions.Error, which stops dnf before anything is downloaded or installed.

import json
import logging
import os
import subprocess

import rpm

import dnf
import dnf.exceptions
import dnf.transaction
import libdnf.transaction

logger = logging.getLogger('dnf.plugin')

PREFIX = 'kabiguard: '


def ways_out(pkgs=()):
    """What an admin can do about a refusal, printed with it: pkgs are the refused packages,
    whose downloaded files a later forecast can read."""
    check = ' '.join(p.localPkg() for p in pkgs) or 'PACKAGE.rpm'
    return (
        "ways out: upgrade the rest without kernels: dnf upgrade --exclude='kernel*'",
        '  the kernel passes once a build of the module for it is installed (kmod package, DKMS);',
        '  check with: kabiguard forecast ' + check,
        '  to install it anyway: dnf --disableplugin=kabiguard ..., or policy = warn in /etc/dnf/plugins/kabiguard.conf',
    )
MAX_PROBLEMS = 3  # symbols shown per module; the forecast has them all (--json)
MAX_ROUNDS = 4  # refused kernels forecast one after the other before the rest are kept out unread


def is_image(path):
    """Whether path is a kernel image where RHEL's kernel-core ships it: lib/modules/K/vmlinuz."""
    parts = path.strip('/').split('/')
    if parts[:1] == ['usr']:
        parts = parts[1:]
    return len(parts) == 4 and parts[:2] == ['lib', 'modules'] and parts[3] == 'vmlinuz'


def may_be_kernel(pkg):
    """A package that may ship a kernel image or modules for one: its file list says so, or,
    where dnf did not load the repositories' file lists, its name starts with kernel (RHEL
    splits a kernel into kernel-core, kernel-modules-core, kernel-modules) or kmod- (a build
    for the new kernel, which counts as its own). The package's own header decides once it is
    downloaded."""
    return (pkg.name.startswith('kernel') or pkg.name.startswith('kmod-') or
            any(f.lstrip('/').startswith(('lib/modules/', 'usr/lib/modules/')) for f in pkg.files))


def modules_release(path):
    """The release of lib/modules/RELEASE/... in a file path, or None."""
    parts = path.strip('/').split('/')
    if parts[:1] == ['usr']:
        parts = parts[1:]
    if len(parts) >= 4 and parts[:2] == ['lib', 'modules']:
        return parts[2]
    return None


def removed_releases(pkgs):
    """The kernel releases whose image the packages being removed ship (lib/modules/K/vmlinuz;
    installed packages' file lists come from the rpm database)."""
    out = []
    for p in pkgs:
        for f in p.files:
            if is_image(f):
                parts = f.strip('/').split('/')
                release = parts[-2]
                if release not in out:
                    out.append(release)
    return out


def header_files(path):
    """The file list in the header of the package file at path (its signature was checked)."""
    ts = rpm.TransactionSet()
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS)  # checked before (package_signature_check)
    fd = os.open(path, os.O_RDONLY)
    try:
        hdr = ts.hdrFromFdno(fd)
    finally:
        os.close(fd)
    return [f.decode('utf-8', 'replace') if isinstance(f, bytes) else f for f in hdr[rpm.RPMTAG_FILENAMES] or []]


class Verdict(object):
    """kabiguard's forecast of one kernel package."""

    def __init__(self, pkg, code, report, error):
        self.pkg = pkg
        self.code = code  # forecast's exit status: 0 keeps, 1 would not, 2 error
        self.report = report  # the package's forecast (JSON object), when there is one
        self.error = error  # what went wrong, when code is 2
        self.told = False  # a passing verdict is printed once

    def refused(self):
        return self.code == 1

    def lines(self):
        """Why the kernel would boot without some required module: module, symbol, CRCs."""
        r = self.report or {}
        kernel = r.get('kernel', '?')
        lost = r.get('lost') or []
        out = ['%s (%s) would boot without %s' % (self.pkg, kernel, ', '.join(lost) or 'a required module')]
        for m in r.get('modules') or []:
            if m.get('module') not in lost:
                continue
            problems = m.get('problems') or []
            if not problems:
                out.append('  %s: %s: %s' % (m.get('module'), m.get('state'), m.get('reason', '')))
                continue
            out.append('  %s: %s, %d symbol(s):' % (m.get('module'), m.get('state'), len(problems)))
            for p in problems[:MAX_PROBLEMS]:
                if p.get('kind') == 'crc':
                    out.append('    %s: module wants CRC %s, kernel has %s' % (p.get('symbol'), p.get('want'), p.get('have')))
                else:
                    out.append('    %s: not exported by the kernel (module wants %s)' % (p.get('symbol'), p.get('want')))
            if len(problems) > MAX_PROBLEMS:
                out.append('    and %d more' % (len(problems) - MAX_PROBLEMS))
        return out


class Kabiguard(dnf.Plugin):
    name = 'kabiguard'

    def __init__(self, base, cli):
        super(Kabiguard, self).__init__(base, cli)
        self.policy = 'refuse'
        self.binary = '/usr/sbin/kabiguard'
        self.verdicts = {}  # str(pkg) -> Verdict, so a kernel is forecast once per run
        self.files = {}  # str(pkg) -> its header's file list, once downloaded and verified
        self.busy = False  # resolved() resolves again, and dnf calls resolved() again then

    def config(self):
        conf = self.read_config(self.base.conf)
        if conf.has_section('main'):
            if conf.has_option('main', 'policy'):
                self.policy = conf.get('main', 'policy').strip()
            if conf.has_option('main', 'kabiguard'):
                self.binary = conf.get('main', 'kabiguard').strip()
        if self.policy not in ('refuse', 'warn'):
            raise dnf.exceptions.ConfigError(
                PREFIX + 'policy = %s in kabiguard.conf: want refuse or warn' % self.policy)

    def resolved(self):
        if self.busy or self.base.transaction is None:
            return
        if not os.access(self.binary, os.X_OK):
            logger.warning(PREFIX + '%s not found: kernels in this transaction are not checked', self.binary)
            return
        self.busy = True
        try:
            self.judge_transaction()
        finally:
            self.busy = False

    def judge_transaction(self):
        self.removing = removed_releases(self.base.transaction.remove_set)
        if self.removing:
            self.judge_removal()
        # Each round takes refused kernels out and resolves again; a round either ends the
        # loop or excludes at least one more package, so it ends. After a kABI break every
        # newer kernel of the series is usually refused too: past MAX_ROUNDS the kernels left
        # are all kept out at once rather than downloaded one after the other.
        rounds = 0
        while True:
            rounds += 1
            if rounds > MAX_ROUNDS and self.policy == 'refuse':
                # Only what was never read: a kernel that passed stays, with its companions.
                left = [p for p in self.base.transaction.install_set if may_be_kernel(p) and str(p) not in self.verdicts]
                if not left:
                    return
                logger.warning(PREFIX + '%d kernels refused in a row: keeping the kernel packages not read out of this transaction', MAX_ROUNDS)
                self.take_out(left)  # resolving again may bring others: they go the same way
                continue
            verdicts = self.forecast([p for p in self.base.transaction.install_set if may_be_kernel(p)])
            failed = [v for v in verdicts if v.code not in (0, 1)]
            for v in failed:
                if self.policy == 'refuse':
                    self.deny('cannot forecast %s: %s' % (v.pkg, v.error))
                logger.warning(PREFIX + 'cannot forecast %s: %s', v.pkg, v.error)
            for v in verdicts:
                if v.code == 0 and not v.told:
                    v.told = True
                    logger.info(PREFIX + '%s (%s) keeps every required module', v.pkg, v.report.get('kernel', '?'))
            refused = [v for v in verdicts if v.refused()]
            if not refused:
                return
            for v in refused:
                for line in v.lines():
                    logger.warning(PREFIX + line)
            if self.policy == 'warn':
                logger.warning(PREFIX + 'policy warn: installing it all the same')
                return
            self.take_out([v.pkg for v in refused])

    def forecast(self, candidates):
        """The verdicts on the candidates that ship a kernel image (downloading them first)."""
        todo = [p for p in candidates if str(p) not in self.verdicts]
        if todo:
            try:
                self.base.download_packages(todo)
            except dnf.exceptions.Error as e:  # -C with nothing cached, a mirror down
                for p in todo:
                    self.verdicts[str(p)] = Verdict(p, 2, None, 'cannot download it to read it: %s' % e)
                return [self.verdicts[str(p)] for p in candidates]
            for p in todo:
                # dnf checks signatures only once the transaction runs; kabiguard runs as root
                # and reads what it is given, so a package is read only once it verifies.
                sig, why = self.base.package_signature_check(p)
                if sig != 0:
                    self.verdicts[str(p)] = Verdict(p, 2, None, '%s: %s (not read before it verifies: import the key with rpm --import, then run dnf again)' % (p, why))
                    continue
                try:
                    self.files[str(p)] = header_files(p.localPkg())
                except (OSError, rpm.error) as e:
                    self.verdicts[str(p)] = Verdict(p, 2, None, '%s: %s' % (p.localPkg(), e))
                    continue
                self.verdicts[str(p)] = None
            for p in todo:
                if self.verdicts[str(p)] is None and any(is_image(f) for f in self.files.get(str(p), ())):
                    self.verdicts[str(p)] = self.run_forecast(p, self.companions(p, candidates))
        return [self.verdicts[str(p)] for p in candidates if self.verdicts[str(p)] is not None]

    def companions(self, kernel, candidates):
        """The transaction's packages that bring modules for kernel's release and no image of
        their own: kernel-modules-core, kernel-modules, a kmod- package built for it. They are
        forecast together with the kernel, as one installation."""
        releases = {modules_release(f) for f in self.files[str(kernel)] if is_image(f)}
        out = []
        for q in candidates:
            files = self.files.get(str(q))
            if q is kernel or not files or any(is_image(f) for f in files):
                continue
            if any(modules_release(f) in releases for f in files):
                out.append(q)
        return out

    def judge_removal(self):
        """A removal of kernels (dnf remove, or installonly_limit dropping the oldest) that
        would strip a kernel staying installed of a required module: the links into the
        removed kernels' DKMS builds go with them. Refused (the transaction stops) or warned."""
        cmd = [self.binary, 'forecast', '--json', '--root', self.base.conf.installroot]
        for r in self.removing:
            cmd += ['--removing', r]
        try:
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            losses = json.loads(res.stdout)['losses'] if res.returncode in (0, 1) else None
        except (OSError, ValueError, KeyError, TypeError) as e:
            losses, res = None, None
            why = str(e)
        if losses is None:
            why = res.stderr.strip() if res is not None else why
            if self.policy == 'refuse':
                self.deny('cannot judge the removal of %s: %s' % (', '.join(self.removing), why))
            logger.warning(PREFIX + 'cannot judge the removal of %s: %s', ', '.join(self.removing), why)
            return
        if not losses:
            return
        for l in losses:
            logger.warning(PREFIX + 'removing %s: %s stays installed but loses required module %s: %s',
                           ', '.join(self.removing), l['kernel'], l['module'], l['reason'])
        if self.policy == 'warn':
            logger.warning(PREFIX + 'policy warn: removing it all the same')
            return
        self.deny('the removal of %s would strip a kernel staying installed; keep it: '
                  'dnf remove without it, or raise installonly_limit in /etc/dnf/dnf.conf' % ', '.join(self.removing))

    def run_forecast(self, pkg, companions=()):
        cmd = [self.binary, 'forecast', '--json', '--root', self.base.conf.installroot]
        for r in getattr(self, 'removing', ()):
            cmd += ['--removing', r]
        cmd.append(pkg.localPkg())
        cmd += [c.localPkg() for c in companions]
        try:
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        except OSError as e:
            return Verdict(pkg, 2, None, str(e))
        if res.returncode not in (0, 1):
            return Verdict(pkg, 2, None, (res.stderr.strip() or 'exit status %d' % res.returncode))
        try:
            reports = json.loads(res.stdout)
        except ValueError as e:
            return Verdict(pkg, 2, None, '%s: unreadable JSON: %s' % (' '.join(cmd), e))
        if len(reports) != 1:
            return Verdict(pkg, 2, None, '%s: %d forecasts, want 1' % (' '.join(cmd), len(reports)))
        return Verdict(pkg, res.returncode, reports[0], None)

    def take_out(self, refused):
        """Exclude the refused kernels and what in the transaction needs them; resolve again."""
        out = self.with_dependents(refused)
        for p in out:
            if p not in refused:
                logger.warning(PREFIX + 'taking %s out too: it needs a kernel kept out', p)
        items = [(tsi.action, tsi.reason, tsi.pkg) for tsi in self.base.transaction]
        self.base.sack.add_excludes(out)
        # A goal cannot be solved again after its packages change (libdnf keeps the installonly
        # packages it chose), so each way below starts from a new one.
        if not self.replay_command():
            self.resolve_without(items, out)
        logger.warning(PREFIX + 'kept out of this transaction: %s; the rest goes on',
                       ', '.join(str(p) for p in out))
        for line in ways_out(refused):
            logger.warning(PREFIX + line)
        # Something asked for was not done: dnf exits 1 after the rest is installed, so a
        # patching pipeline does not report the kernel as updated.
        if self.cli is not None:
            self.cli.demands.success_exit_status = 1

    def replay_command(self):
        """Resolve the command line's requests again, now that the refused packages are
        excluded, as if they had been given to --exclude: an upgrade or an install by name
        picks the best candidate left. False when there is no command to replay or it names
        an excluded package itself (dnf install kernel-core-VERSION)."""
        command = getattr(self.cli, 'command', None)
        if command is None:
            return False
        self.base.reset(goal=True)
        try:
            command.run()
            self.base.resolve(self.allow_erasing())
        except dnf.exceptions.Error as e:
            logger.debug(PREFIX + 'the command cannot be resolved again without the refused packages: %s', e)
            return False
        return True

    def resolve_without(self, items, out):
        """Resolve anew the transaction dnf had resolved, less the packages in out: each
        package the user asked for, upgrade, downgrade, reinstall and removal becomes a request
        of its own, the dependencies are left to the solver."""
        names = ', '.join(str(p) for p in out)
        self.base.reset(goal=True)
        user = libdnf.transaction.TransactionItemReason_USER
        for action, reason, pkg in items:
            if pkg in out:
                continue
            if action == dnf.transaction.PKG_INSTALL and reason == user:
                self.base.package_install(pkg, strict=False)
            elif action == dnf.transaction.PKG_UPGRADE:
                self.base.package_upgrade(pkg)
            elif action == dnf.transaction.PKG_DOWNGRADE:
                self.base.package_downgrade(pkg)
            elif action == dnf.transaction.PKG_REINSTALL:
                self.base.package_reinstall(pkg)
            elif action == dnf.transaction.PKG_REMOVE and reason == user:
                self.base.package_remove(pkg)
        try:
            self.base.resolve(self.allow_erasing())
        except dnf.exceptions.DepsolveError as e:
            self.deny('the transaction cannot go on without %s:\n%s' % (names, e))
        if not self.base.transaction:
            self.deny('nothing is left of the transaction without %s' % names)

    def allow_erasing(self):
        return bool(self.cli and self.cli.demands.allow_erasing)

    def with_dependents(self, refused):
        """refused plus the transaction's packages that need something only those provide."""
        sack = self.base.sack
        out = list(refused)
        pending = sack.query().filterm(pkg=list(self.base.transaction.install_set))
        while True:
            gone = sack.query().filterm(pkg=out)
            more = [p for p in pending.filter(requires=gone) if p not in out and self.needs(p, out)]
            if not more:
                return out
            out.extend(more)

    def needs(self, pkg, gone):
        """Whether one of pkg's requirements has providers, all of them among gone."""
        for req in pkg.requires:
            providers = self.base.sack.query().filterm(provides=req)
            if providers and all(q in gone for q in providers):
                return True
        return False

    def deny(self, why):
        raise dnf.exceptions.Error(
            PREFIX + why + '\n' + PREFIX + 'transaction stopped: nothing was installed or removed\n' +
            '\n'.join(PREFIX + line for line in ways_out()))
