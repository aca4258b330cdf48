"""`tui-gan serve`: the attached app in a browser tab, through Textual's server package
(textual-serve, the ``serve`` extra). ``command`` checks the flags and the run and needs
nothing beyond the core; ``server`` is the web server and imports aiohttp and textual-serve,
so only a ``tui-gan serve`` that got past those checks loads them. No torch, and no Textual
in this process: each tab's app is a ``tui-gan attach`` child process."""
