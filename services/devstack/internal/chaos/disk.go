package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// diskSize is each NATS node's own filesystem when disk faults are on:
// far more than a run stores, small enough to fill at once.
const diskSize = 1 << 30

// mountDisks gives each NATS node's store directory a filesystem of its
// own (a tmpfs of diskSize), so that one node's disk can be filled while
// the others' are not. It needs root and mount(2); where that is refused
// (not root, a container without the capability) it unmounts what it
// mounted and says why, and the run has no disk faults.
func mountDisks(nodes []*proc, say func(string, ...any)) (unmount func()) {
	var mounted []string
	unmount = func() {
		for _, dir := range mounted {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	}
	for _, p := range nodes {
		if err := syscall.Mount("tmpfs", p.store, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", diskSize)); err != nil {
			unmount()
			say("no disk-full faults here: the NATS nodes' store directories cannot have filesystems of their own (mount tmpfs: %v; needs root)", err)
			return func() {}
		}
		mounted = append(mounted, p.store)
		p.disk = true
	}
	return unmount
}

// diskFull fills a NATS node's disk for 3–6 s: JetStream's writes on that
// node fail with ENOSPC, and NATS disables JetStream on a node out of
// disk. The other two keep the quorum. Then the space comes back and the
// node is restarted, as an operator would once the disk is freed.
func (d *driver) diskFull(ctx context.Context) {
	if !d.natsSettled() {
		return // never while another node is out or catching up
	}
	var nodes []*proc
	for _, p := range d.st.nats {
		if p.disk {
			nodes = append(nodes, p)
		}
	}
	if len(nodes) == 0 {
		return
	}
	p := nodes[d.rng.IntN(len(nodes))]
	full := time.Duration(3000+d.rng.IntN(3000)) * time.Millisecond
	filler := filepath.Join(p.store, "chaos-disk-full")
	if err := fill(filler); err != nil {
		d.say("could not fill %s's disk: %v", p.name, err)
		return
	}
	d.say("disk full on %s for %s (then freed, node restarted)", p.name, full)
	d.count("fault: NATS node disk full")
	select {
	case <-ctx.Done():
	case <-time.After(full):
	}
	if err := os.Remove(filler); err != nil {
		d.say("could not free %s's disk: %v", p.name, err)
	}
	d.kill(p, 500*time.Millisecond)
}

// fill takes every free block of the filesystem holding path.
func fill(path string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	free := int64(st.Bavail) * st.Bsize
	// Leave nothing: a failed allocation of the whole asks for a bit less.
	for free > 0 {
		err = syscall.Fallocate(int(f.Fd()), 0, 0, free)
		if err == nil || !errors.Is(err, syscall.ENOSPC) {
			return err
		}
		free -= 1 << 20
	}
	return nil
}
