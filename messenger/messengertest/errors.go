package messengertest

import (
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/metaerr"
)

// notOwner is the refusal of a thread-control call by a non-owner on the
// page's platform: Messenger's own (msgr) or Instagram's.
func notOwner(pg *page, msgr func() *messenger.Error) *messenger.Error {
	if pg.instagram {
		return metaerr.IGNotOwner()
	}
	return msgr()
}

func outsideWindow(pg *page) *messenger.Error {
	if pg.instagram {
		return metaerr.IGOutsideWindow()
	}
	return metaerr.OutsideWindow()
}
