package engine

// ordset is an ordered set with ranks: a treap whose nodes know the size of
// their subtree. Insert, Delete, Min and Rank cost O(log n) expected;
// Ascend visits items in order and stops when asked. The order must be
// strict and total (ties broken by an id), and an item's sort key must not
// change while it is in the set: delete it, change it, insert it again.
type ordset[T comparable] struct {
	root *onode[T]
	less func(a, b T) bool
	seed uint64
}

type onode[T comparable] struct {
	item        T
	prio        uint64
	size        int
	left, right *onode[T]
}

func newOrdset[T comparable](less func(a, b T) bool) *ordset[T] {
	return &ordset[T]{less: less, seed: 0x9e3779b97f4a7c15}
}

func (n *onode[T]) sz() int {
	if n == nil {
		return 0
	}
	return n.size
}

func (n *onode[T]) fix() { n.size = 1 + n.left.sz() + n.right.sz() }

// Len is the number of items.
func (s *ordset[T]) Len() int { return s.root.sz() }

// split cuts n into the items for which goLeft holds (all smaller) and the rest.
func split[T comparable](n *onode[T], goLeft func(T) bool) (l, r *onode[T]) {
	if n == nil {
		return nil, nil
	}
	if goLeft(n.item) {
		a, b := split(n.right, goLeft)
		n.right = a
		n.fix()
		return n, b
	}
	a, b := split(n.left, goLeft)
	n.left = b
	n.fix()
	return a, n
}

// merge joins l and r, every item of l being smaller than every item of r.
func merge[T comparable](l, r *onode[T]) *onode[T] {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio > r.prio:
		l.right = merge(l.right, r)
		l.fix()
		return l
	default:
		r.left = merge(l, r.left)
		r.fix()
		return r
	}
}

// Insert adds x; it must not be in the set already.
func (s *ordset[T]) Insert(x T) {
	// xorshift64: deterministic, no shared random source.
	s.seed ^= s.seed << 13
	s.seed ^= s.seed >> 7
	s.seed ^= s.seed << 17
	l, r := split(s.root, func(y T) bool { return s.less(y, x) })
	s.root = merge(merge(l, &onode[T]{item: x, prio: s.seed, size: 1}), r)
}

// Delete removes x and reports whether it was there.
func (s *ordset[T]) Delete(x T) bool {
	l, r := split(s.root, func(y T) bool { return s.less(y, x) })
	m, r := split(r, func(y T) bool { return !s.less(x, y) }) // the items equal to x
	if m != nil && (m.size != 1 || m.item != x) {
		// Another item sorts equal to x: the order is not strict. Keep it.
		r, m = merge(m, r), nil
	}
	s.root = merge(l, r)
	return m != nil
}

// Min returns the smallest item.
func (s *ordset[T]) Min() (T, bool) {
	n := s.root
	if n == nil {
		var zero T
		return zero, false
	}
	for n.left != nil {
		n = n.left
	}
	return n.item, true
}

// Rank is the number of items smaller than x.
func (s *ordset[T]) Rank(x T) int {
	rank := 0
	for n := s.root; n != nil; {
		if s.less(n.item, x) {
			rank += n.left.sz() + 1
			n = n.right
		} else {
			n = n.left
		}
	}
	return rank
}

// Ascend calls fn on the items in order until it returns false.
func (s *ordset[T]) Ascend(fn func(T) bool) {
	var stack []*onode[T]
	n := s.root
	for n != nil || len(stack) > 0 {
		for n != nil {
			stack = append(stack, n)
			n = n.left
		}
		n = stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !fn(n.item) {
			return
		}
		n = n.right
	}
}
