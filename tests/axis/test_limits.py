import pytest

from gateway.axis import AxisProtocolError
from tests.axis.conftest import AGENCY_A


async def test_an_answer_over_the_limit_is_refused(sim, connect):
    client = connect(AGENCY_A, max_response_bytes=64)
    with pytest.raises(AxisProtocolError) as err:
        await client.directory()
    assert err.value.code == "too_large"
    assert await connect(AGENCY_A).directory()  # the same answer within the default limit
