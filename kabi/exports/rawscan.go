package exports

import "fmt"

func scanRaw(data []byte) ([]entry, error) {
	return nil, fmt.Errorf("%w: raw image scan not implemented", ErrNotKernel)
}
