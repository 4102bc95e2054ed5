"""Channel routing: which consumer serves each named channel runworker listens on."""

from channels.routing import ChannelNameRouter

from workers.rating import RatingConsumer

RATING_CHANNEL = "rating"

channel_router = ChannelNameRouter({RATING_CHANNEL: RatingConsumer.as_asgi()})
