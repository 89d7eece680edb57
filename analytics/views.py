from evalence.pages import SectionLandingView


class OverviewView(SectionLandingView):
    """The home page after sign-in."""

    section_key = "analytics"
