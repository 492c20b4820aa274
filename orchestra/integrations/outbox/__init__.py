"""One durable outbox for everything orchestra sends in the background: webhooks, the MLflow mirror.

A *message* is one thing to send to one destination; it waits in a SQLite table (``messages``,
:mod:`.messages`) until a *deliverer* reports it delivered, dead or disabled. The parts:

- :mod:`.model`: messages, outcomes (DELIVERED / RETRY / DEAD / DISABLED) and the
  :class:`~.model.Deliverer` protocol a sender plugs in (webhooks: one signed POST; the mirror:
  one operation on an MLflow run);
- :mod:`.messages`: the queue itself (enqueue, claim by pid + lease, finish, what is due);
- :mod:`.retry_policy`: :class:`~.retry.RetryPolicy`, jittered backoff with a maximum of attempts that
  honours a ``retry_after`` the deliverer reports;
- :mod:`.breaker`: :class:`~.breaker.Breaker`, which keeps the dispatcher away from a
  destination that could not be reached for a cool-down;
- :mod:`.dispatch`: :class:`~.dispatch.Dispatcher`, the background thread that sends what is
  due, at most one message in flight per *lane*, and drains with a deadline;
- :mod:`.peek`: "is anything due?" answered with sqlite3 alone (cheap for every command).

Each deliverer keeps its own file (``hooks.sqlite``, ``mirror.sqlite``): the same ``messages``
schema plus the deliverer's own tables. Importing this package imports nothing.
"""
