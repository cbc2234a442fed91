"""The admin Client's machinery: how its calls are checked, sent, retried and read.

`aiomq.admin.Client` checks a call's arguments (`checks`) and hands it to the function
of the same name in `topics` or `groups`. Each runs in a `call.call_scope`, which bounds
it by the client's timeout and maps its errors; its `call.AdminCall` sends the requests,
which the seam builds (`aiomq._internal.kafka.admin`, aiokafka's and those it lacks), and
the answers are read by field name.

Nothing here imports `aiomq.admin`: the result types come from `aiomq.cluster`, and the
client is known by the little a call needs of it (`call.AdminClient`).
"""
