package statemachine

import "testing"

func BenchmarkApplyPass(b *testing.B) {
	b.ReportAllocs()
	p := page(ConversationRouting)
	th := Thread{State: Primary, Owner: appP}
	in := Input{Op: OpPass, Caller: appP, Target: appS2, At: t0}
	for b.Loop() {
		if _, err := Apply(p, th, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyObserveUnchanged(b *testing.B) {
	b.ReportAllocs()
	p := page(ConversationRouting)
	th := Thread{State: Secondary, Owner: appS1}
	in := Input{Op: OpObserve, Target: appS1, At: t0}
	for b.Loop() {
		if _, err := Apply(p, th, in); err != nil {
			b.Fatal(err)
		}
	}
}
