"""
The custom test of the seed specification ("Exemple de Test Personnalisé"), exactly as written,
under pytest-asyncio; then the same scenario on both anyio backends.

The seed's snippet omits its ``httpcore`` import; it is the only line added.
"""

import asyncio  # noqa: F401  (imported by the seed's snippet)
from unittest.mock import AsyncMock, patch

import httpcore
import pytest

from typed_async_client import AsyncResilientClient, RequestContext


class TestCustomScenario:
    @pytest.mark.asyncio
    async def test_custom_retry_scenario(self):
        """Test d'un scénario métier spécifique."""
        async with AsyncResilientClient() as client:
            context = RequestContext(
                request_id="business_critical",
                max_retries=5,
                base_delay=0.1
            )

            with patch.object(client._client, 'request') as mock:
                # Simuler 3 échecs puis 1 succès
                mock_response = AsyncMock()
                mock_response.status_code = 200

                mock.side_effect = [
                    httpcore.ConnectError("Fail 1"),
                    httpcore.ConnectError("Fail 2"),
                    httpcore.ConnectError("Fail 3"),
                    mock_response
                ]

                task = await client.get("https://test.com", context=context)
                response = await task

                assert response.status_code == 200
                assert mock.call_count == 4

                # Vérifier les métriques
                result = client.get_result("business_critical")
                assert result.attempts == 4
                assert result.is_success


@pytest.mark.anyio
async def test_custom_retry_scenario_on_each_backend(anyio_backend: str) -> None:
    """Three httpcore connect errors then a response give four attempts on asyncio and trio."""
    async with AsyncResilientClient() as client:
        context = RequestContext(request_id="business_critical", max_retries=5, base_delay=0.01)
        with patch.object(client.http_client, "request") as mock:
            mock_response = AsyncMock()
            mock_response.status_code = 200
            mock.side_effect = [
                httpcore.ConnectError("Fail 1"),
                httpcore.ConnectError("Fail 2"),
                httpcore.ConnectError("Fail 3"),
                mock_response,
            ]
            response = await (await client.get("https://test.com", context=context))
            assert 200 == response.status_code
            assert 4 == mock.call_count
            result = client.get_result("business_critical")
            assert result is not None
            assert 4 == result.attempts
            assert result.is_success
            assert 3 == client.stats().retries
