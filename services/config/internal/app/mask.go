package app

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldRules say how an update treats a resource's fields.
type fieldRules struct {
	// fixed fields identify the record (id, tenant_id): taken from the
	// stored record, never changed by an update.
	fixed []string
	// output fields are the server's (version, times, hints): kept from the
	// stored record and refused in a mask.
	output []string
	// writeOnly fields (secrets, password) are applied by the caller; the
	// merge leaves them as they are in the request and allows them in a
	// mask.
	writeOnly []string
}

var metaFields = []string{"version", "create_time", "update_time"}

// merge computes the record an update asks for. Without paths, the request
// replaces every field but the fixed and output ones. With paths, only the
// named fields (dotted for nested messages) are taken from the request; a
// named field absent from the request is cleared.
func merge[M proto.Message](stored, req M, paths []string, rules fieldRules) (M, error) {
	if len(paths) == 0 {
		out := proto.Clone(req).(M)
		keep := slices.Concat(rules.fixed, rules.output)
		copyFields(out.ProtoReflect(), stored.ProtoReflect(), keep)
		return out, nil
	}
	out := proto.Clone(stored).(M)
	var vs violations
	for _, p := range paths {
		top, _, _ := strings.Cut(p, ".")
		switch {
		case slices.Contains(rules.fixed, top):
			vs.add("update_mask", "%q identifies the record and cannot be changed", p)
			continue
		case slices.Contains(rules.output, top):
			vs.add("update_mask", "%q is set by the server", p)
			continue
		case slices.Contains(rules.writeOnly, top):
			continue
		}
		if err := copyPath(out.ProtoReflect(), req.ProtoReflect(), strings.Split(p, ".")); err != "" {
			vs.add("update_mask", "%q: %s", p, err)
		}
	}
	if err := vs.err(CodeInvalid, "invalid update mask"); err != nil {
		var zero M
		return zero, err
	}
	return out, nil
}

// masked reports whether a field is named by a mask (or all are: no mask).
func masked(paths []string, field string) bool {
	if len(paths) == 0 {
		return true
	}
	for _, p := range paths {
		if p == field || strings.HasPrefix(p, field+".") {
			return true
		}
	}
	return false
}

func copyFields(dst, src protoreflect.Message, names []string) {
	fields := dst.Descriptor().Fields()
	for _, n := range names {
		fd := fields.ByName(protoreflect.Name(n))
		if fd == nil {
			continue
		}
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		} else {
			dst.Clear(fd)
		}
	}
}

func copyPath(dst, src protoreflect.Message, path []string) string {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(path[0]))
	if fd == nil {
		return "no such field"
	}
	if len(path) == 1 {
		if src == nil || !src.IsValid() || !src.Has(fd) {
			dst.Clear(fd)
			return ""
		}
		v := src.Get(fd)
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			v = protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
		}
		dst.Set(fd, v)
		return ""
	}
	if fd.Message() == nil || fd.IsList() || fd.IsMap() {
		return "only singular message fields have sub-fields"
	}
	var sub protoreflect.Message
	if src != nil && src.IsValid() {
		// An unset message field reads as an invalid (empty) message, so
		// the leaf below is cleared.
		sub = src.Get(fd).Message()
	}
	return copyPath(dst.Mutable(fd).Message(), sub, path[1:])
}
