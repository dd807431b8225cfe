import asyncio

from gateway.app import Gateway


async def test_crashed_background_task_is_restarted(settings):
    gw = Gateway(settings)
    calls = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        await gw.stopping.wait()

    task = gw.spawn(flaky, "flaky")
    for _ in range(100):
        if len(calls) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(calls) == 2  # restarted once, after the backoff
    assert gw.metrics.task_restarts.labels("flaky")._value.get() == 1
    gw.stopping.set()
    await asyncio.wait_for(task, 5)
