--- Queues: async.Queue(maxsize), async.LifoQueue(maxsize),
-- async.PriorityQueue(maxsize) (maxsize 0 or nil: unbounded).
--
-- q:put(item) waits while the queue is full; q:get() waits while it is
-- empty; put_nowait/get_nowait raise QueueFull/QueueEmpty instead.
-- PriorityQueue: q:put(item, priority) (the item is its own priority when
-- none is given; lowest first, equal priorities first in, first out) and
-- q:get() returns item, priority.  q:task_done() after handling an item;
-- q:join() waits until every item put was handled.  q:shutdown(immediate)
-- makes put raise QueueShutDown, and get too once the queue is empty (at
-- once, dropping the items, if immediate).  Waiters are served FIFO; a
-- getter cancelled while an item was being handed to it takes nothing: the
-- item goes to the next getter.  The work is in C (bindings/queue.c).
local core = require "asynchost.core.queue"

return {
  Queue = core.Queue,
  LifoQueue = core.LifoQueue,
  PriorityQueue = core.PriorityQueue,
}
