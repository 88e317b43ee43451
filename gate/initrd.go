package gate

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kabiguard/kabiguard/imagesync"
	"github.com/kabiguard/kabiguard/initramfs"
)

// Images lists the initramfs images the kernel will boot with: the explicit ones, the
// initrd* files of the staging area, else the distribution's usual path under the root.
func Images(opt Options) []string {
	imgs := append([]string(nil), opt.Initrds...)
	if opt.StagingArea != "" {
		staged, _ := filepath.Glob(filepath.Join(opt.StagingArea, "initrd*"))
		sort.Strings(staged)
		imgs = append(imgs, staged...)
	}
	if len(imgs) == 0 {
		if img := imagesync.FindImage(opt.Root, opt.Kernel); img != "" {
			imgs = append(imgs, img)
		}
	}
	return imgs
}

// checkInitrds marks every early module that is not (with its dependencies) in one of the
// kernel's images.
func checkInitrds(opt Options, res *Result) {
	imgs := Images(opt)
	res.Initrds = append(res.Initrds, imgs...)
	have := map[string]bool{}
	var readErrs []string
	for _, p := range imgs {
		names, err := imageModules(p, opt.Kernel)
		if err != nil {
			readErrs = append(readErrs, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		for n := range names {
			have[n] = true
		}
	}
	where := strings.Join(imgs, ", ")
	for i := range res.Modules {
		m := &res.Modules[i]
		if !m.Early {
			continue
		}
		switch {
		case len(imgs) == 0:
			m.Initrd = "no"
			if m.OK {
				m.Reason = fmt.Sprintf("%s is required early, but %s has no initramfs to look in (none given, none in the staging area, none of /%s)",
					m.Name, opt.Kernel, strings.Join(imagesync.ImagePaths(opt.Kernel), ", /"))
			}
		case len(readErrs) > 0:
			m.Initrd = "no"
			if m.OK {
				m.Reason = fmt.Sprintf("%s is required early, but the initramfs cannot be read: %s", m.Name, strings.Join(readErrs, "; "))
			}
		case !have[m.Name]:
			m.Initrd = "no"
			if m.OK {
				m.Reason = fmt.Sprintf("%s is required early, but the initramfs (%s) does not contain it", m.Name, where)
			}
		default:
			m.Initrd = "yes"
			for _, d := range m.Depends {
				if !have[d] && m.OK {
					m.Initrd = "no"
					m.Reason = fmt.Sprintf("%s is required early and is in the initramfs (%s), but its dependency %s is not", m.Name, where, d)
				}
			}
		}
		m.OK = m.Reason == ""
	}
}

// imageModules returns the names of the modules of release inside the image at path.
func imageModules(path, release string) (map[string]bool, error) {
	im, err := initramfs.Open(path, initramfs.Options{})
	if err != nil {
		return nil, err
	}
	defer im.Close()
	kms, err := imagesync.Modules(im)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, km := range kms {
		if km.Release != release {
			continue
		}
		for _, m := range km.Modules {
			out[m.Name] = true
		}
	}
	return out, nil
}
