//go:build linux

package netpoll

// freeList keeps values a loop reuses (output queues, input holders) so
// that connections coming and going allocate none; it holds at most
// maxFree. Loop goroutine only.
type freeList[T any] []*T

// maxFree bounds each free list: past it a value given back is left to the
// garbage collector.
const maxFree = 1024

// get returns a kept value, or a new zero one.
func (f *freeList[T]) get() *T {
	n := len(*f)
	if n == 0 {
		return new(T)
	}
	v := (*f)[n-1]
	(*f)[n-1] = nil
	*f = (*f)[:n-1]
	return v
}

// put keeps v, already reset by the caller, unless the list is full.
func (f *freeList[T]) put(v *T) {
	if len(*f) < maxFree {
		*f = append(*f, v)
	}
}
