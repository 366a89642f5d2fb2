package partition

// FailConsumes has f run before each consume of g, failing it with f's
// error: a NATS node down when the replica consumes again.
func FailConsumes(g *Group, f func() error) { g.beforeConsume = f }
