// Package pubsub keeps wspush's topics and fans published messages out to
// their subscribers.
//
// # Concurrency
//
// Subscribers live on event loops. For each topic the Hub keeps one
// subscriber set per loop, and only that loop's goroutine touches it:
// Subscribe and Unsubscribe are called on the subscriber's loop, and a publish
// reaches a loop as one task that the loop runs itself. A publish therefore
// costs one encoded frame and one task per loop that has subscribers, never a
// lock or an allocation per subscriber.
//
// Topic.mu orders publishes of one topic: the sequence number is assigned and
// the tasks are posted under it, so every loop sees a topic's messages in
// sequence order. Hub.mu guards the topic table and each topic's subscriber
// count. Without a history a topic is forgotten exactly when its last
// subscriber leaves; with one (Hub.SetHistory, v1.1) it outlives its
// subscribers and Hub.Sweep forgets it after the history's TTL with neither
// a subscriber nor a publish (history_hub.go has the lock order).
// Where both are held, Hub.mu is taken first (gainInterest); no code takes
// Hub.mu while holding a Topic.mu.
//
// With a cluster interest callback the Hub never waits for the network: a
// topic's first local subscriber makes it pending, and its waiting
// subscribers are confirmed on their loops when the interest's owner calls
// InterestReady (interest.go). A cluster recovery (v1.1) holds a
// subscription on its loop (Topic.Hold, Release) while the server reads the
// stream elsewhere; messages that never reached the node are found by their
// predecessor's seq and by CheckPosition, and the topic's subscribers are
// told on their loops (gap.go).
package pubsub
