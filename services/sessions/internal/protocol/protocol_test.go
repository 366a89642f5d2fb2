package protocol

import "testing"

func TestFrameType(t *testing.T) {
	for _, tc := range []struct {
		frame []byte
		want  string
	}{
		{Frame(TypeOfferCreated, map[string]string{"type": "not this"}), TypeOfferCreated},
		{Ack("r1", nil), TypeAck},
		{[]byte(`{"type":"x","v":1}`), ""},
		{[]byte(`{"v":1,"type":"unterminated`), ""},
		{nil, ""},
	} {
		if got := FrameType(tc.frame); got != tc.want {
			t.Errorf("FrameType(%s) = %q, want %q", tc.frame, got, tc.want)
		}
	}
}

// Every client frame type the gateway answers is known to ClientType
// (which names spans), and nothing a client makes up is.
func TestClientTypes(t *testing.T) {
	for _, typ := range []string{TypeAuth, TypeMessageSend, TypeSupervisorResetRona, TypePing} {
		if !ClientType(typ) {
			t.Errorf("ClientType(%q) = false", typ)
		}
	}
	for _, typ := range []string{"", "offer.created", "x.y.z", "message.send "} {
		if ClientType(typ) {
			t.Errorf("ClientType(%q) = true", typ)
		}
	}
}
