"""Channel routing: which consumer serves each named channel runworker listens on."""

from channels.routing import ChannelNameRouter

from protocol import RATING_CHANNEL
from workers.rating import RatingConsumer

channel_router = ChannelNameRouter({RATING_CHANNEL: RatingConsumer.as_asgi()})
