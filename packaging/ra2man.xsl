<?xml version="1.0"?>
<!--
  ra2man.xsl: the man page (section 7, roff) of an OCF resource agent, made
  from its meta-data, like resource-agents' ra2man. Used by scripts/package:

    OCF_RESOURCE_INSTANCE=RESOURCE ocf/publisher meta-data |
      xsltproc -novalid -stringparam provider cib-replicator packaging/ra2man.xsl - \
      > ocf_cib-replicator_publisher.7

  Parameters: provider (the agent's provider directory), binary (the
  daemon's man page to refer to, e.g. cib-publisher).

  Text is written as roff: blank lines start paragraphs, lines indented by
  two spaces or more are examples (no filling), backslashes are escaped and
  lines starting with "." or "'" are protected.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:param name="provider" select="'cib-replicator'"/>
  <xsl:param name="binary" select="''"/>

  <xsl:variable name="name" select="/resource-agent/@name"/>
  <xsl:variable name="page" select="concat('ocf_', $provider, '_', $name)"/>

  <xsl:template match="/resource-agent">
    <xsl:text>.TH "</xsl:text>
    <xsl:value-of select="translate($page, 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')"/>
    <xsl:text>" "7" "" "</xsl:text>
    <xsl:value-of select="concat($provider, ' ', @version)"/>
    <xsl:text>" "OCF resource agents"&#10;</xsl:text>

    <xsl:text>.SH NAME&#10;</xsl:text>
    <xsl:value-of select="$page"/>
    <xsl:text> \- </xsl:text>
    <xsl:call-template name="line">
      <xsl:with-param name="text" select="normalize-space(shortdesc)"/>
    </xsl:call-template>

    <xsl:text>.SH SYNOPSIS&#10;</xsl:text>
    <xsl:text>\fB</xsl:text>
    <xsl:value-of select="$name"/>
    <xsl:text>\fR [</xsl:text>
    <xsl:for-each select="actions/action">
      <xsl:if test="position() > 1"> | </xsl:if>
      <xsl:value-of select="@name"/>
    </xsl:for-each>
    <xsl:text>]&#10;.PP&#10;ocf:</xsl:text>
    <xsl:value-of select="concat($provider, ':', $name)"/>
    <xsl:text> (/usr/lib/ocf/resource.d/</xsl:text>
    <xsl:value-of select="concat($provider, '/', $name)"/>
    <xsl:text>), OCF </xsl:text>
    <xsl:value-of select="version"/>
    <xsl:text>&#10;</xsl:text>

    <xsl:text>.SH DESCRIPTION&#10;</xsl:text>
    <xsl:call-template name="text">
      <xsl:with-param name="text" select="longdesc"/>
    </xsl:call-template>

    <xsl:text>.SH SUPPORTED PARAMETERS&#10;</xsl:text>
    <xsl:apply-templates select="parameters/parameter"/>

    <xsl:text>.SH SUPPORTED ACTIONS&#10;</xsl:text>
    <xsl:text>Default timeouts and intervals, from the meta-data (pcs copies them into new resources; give them to crm yourself):&#10;</xsl:text>
    <xsl:apply-templates select="actions/action"/>

    <xsl:if test="$binary != ''">
      <xsl:text>.SH SEE ALSO&#10;</xsl:text>
      <xsl:text>\fB</xsl:text>
      <xsl:value-of select="$binary"/>
      <xsl:text>\fR(8), \fBcrm_resource\fR(8)&#10;</xsl:text>
    </xsl:if>
  </xsl:template>

  <xsl:template match="parameter">
    <xsl:text>.TP&#10;\fB</xsl:text>
    <xsl:value-of select="@name"/>
    <xsl:text>\fR (</xsl:text>
    <xsl:value-of select="content/@type"/>
    <xsl:if test="@required = '1'">, required</xsl:if>
    <xsl:if test="@unique = '1'">, unique</xsl:if>
    <xsl:if test="string(content/@default) != ''">
      <xsl:text>, default: </xsl:text>
      <xsl:call-template name="escape">
        <xsl:with-param name="text" select="content/@default"/>
      </xsl:call-template>
    </xsl:if>
    <xsl:text>)&#10;</xsl:text>
    <xsl:call-template name="line">
      <xsl:with-param name="text" select="concat(normalize-space(shortdesc), '.')"/>
    </xsl:call-template>
    <xsl:call-template name="text">
      <xsl:with-param name="text" select="longdesc"/>
      <xsl:with-param name="paragraph" select="'.IP'"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template match="action">
    <xsl:text>.TP&#10;\fB</xsl:text>
    <xsl:value-of select="@name"/>
    <xsl:text>\fR&#10;</xsl:text>
    <xsl:for-each select="@timeout | @interval | @depth | @role">
      <xsl:if test="position() > 1">, </xsl:if>
      <xsl:value-of select="concat(name(), ' ', .)"/>
    </xsl:for-each>
    <xsl:text>&#10;</xsl:text>
  </xsl:template>

  <!-- Free text, line by line: a paragraph macro before the first line and
       for each run of blank lines, examples unfilled. -->
  <xsl:template name="text">
    <xsl:param name="text"/>
    <xsl:param name="paragraph" select="'.PP'"/>
    <xsl:param name="blank" select="true()"/>
    <xsl:variable name="line" select="substring-before(concat($text, '&#10;'), '&#10;')"/>
    <xsl:variable name="rest" select="substring-after($text, '&#10;')"/>
    <xsl:variable name="empty" select="normalize-space($line) = ''"/>
    <xsl:if test="not($empty)">
      <xsl:if test="$blank">
        <xsl:value-of select="concat($paragraph, '&#10;')"/>
      </xsl:if>
      <xsl:choose>
        <xsl:when test="starts-with($line, '  ')">
          <xsl:text>.RS 4&#10;.nf&#10;</xsl:text>
          <xsl:call-template name="line">
            <xsl:with-param name="text" select="normalize-space($line)"/>
          </xsl:call-template>
          <xsl:text>.fi&#10;.RE&#10;</xsl:text>
        </xsl:when>
        <xsl:otherwise>
          <xsl:call-template name="line">
            <xsl:with-param name="text" select="$line"/>
          </xsl:call-template>
        </xsl:otherwise>
      </xsl:choose>
    </xsl:if>
    <xsl:if test="contains($text, '&#10;')">
      <xsl:call-template name="text">
        <xsl:with-param name="text" select="$rest"/>
        <xsl:with-param name="paragraph" select="$paragraph"/>
        <xsl:with-param name="blank" select="$empty"/>
      </xsl:call-template>
    </xsl:if>
  </xsl:template>

  <!-- One output line, protected and escaped. -->
  <xsl:template name="line">
    <xsl:param name="text"/>
    <xsl:if test="starts-with($text, '.') or starts-with($text, &quot;'&quot;)">\&amp;</xsl:if>
    <xsl:call-template name="escape">
      <xsl:with-param name="text" select="$text"/>
    </xsl:call-template>
    <xsl:text>&#10;</xsl:text>
  </xsl:template>

  <xsl:template name="escape">
    <xsl:param name="text"/>
    <xsl:choose>
      <xsl:when test="contains($text, '\')">
        <xsl:value-of select="substring-before($text, '\')"/>
        <xsl:text>\e</xsl:text>
        <xsl:call-template name="escape">
          <xsl:with-param name="text" select="substring-after($text, '\')"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:value-of select="$text"/>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
