"""Chat commands in WeCom (and `qianmian ask`): the assistant that answers them."""
